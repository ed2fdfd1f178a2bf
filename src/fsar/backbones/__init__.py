"""fsar.backbones"""
