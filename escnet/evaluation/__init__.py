"""escnet.evaluation"""
