"""fsar.engine"""
