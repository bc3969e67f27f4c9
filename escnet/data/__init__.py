"""escnet.data"""
