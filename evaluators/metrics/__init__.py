"""evaluators/metrics"""
