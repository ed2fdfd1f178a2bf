"""fsar.tracking"""
