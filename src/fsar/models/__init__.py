"""fsar.models"""
