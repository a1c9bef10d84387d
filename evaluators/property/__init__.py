"""Property GNN evaluator: formation-energy prediction and screening, with a CHGNet second opinion.

Modules: graphs (k-NN crystal graphs + line graphs), batching (plain-torch graphs and batches),
segment_ops (plain-torch scatter/softmax), model (CrysToGraph-style), cgcnn (baseline),
descriptors (seed-002 hybridisation), potential (CHGNet features), pretrain (CDSSL), data
(CSV I/O), labels (CHGNet-labelled family sets), predictor (config, network, prediction: no
torch_geometric), train (training: PyG's loaders, pyg_graphs), checkpoint, reference (CHGNet
recipe), evaluator (`formation_energy`), excess (`particle_excess`: particle excess energy),
screen (screening API).

Importing the package registers the evaluators 'formation_energy', 'particle_excess' and
'chgnet_formation_energy' (`invdesign.evaluators.base.evaluator_class` imports it on their first
lookup).
"""

from invdesign.evaluators.property.evaluator import FormationEnergyEvaluator
from invdesign.evaluators.property.excess import ParticleExcessEvaluator
from invdesign.evaluators.property.reference import ChgnetFormationEnergyEvaluator, ChgnetReference

__all__ = [
    "ChgnetFormationEnergyEvaluator",
    "ChgnetReference",
    "FormationEnergyEvaluator",
    "ParticleExcessEvaluator",
]
