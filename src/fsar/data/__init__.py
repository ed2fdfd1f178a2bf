"""fsar.data"""
