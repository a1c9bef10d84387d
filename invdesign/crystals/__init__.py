"""invdesign/crystals"""
