"""escnet.training"""
