"""invdesign/core"""
