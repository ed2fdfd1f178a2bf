"""fsar.cli"""
