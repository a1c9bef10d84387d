"""invdesign/training"""
