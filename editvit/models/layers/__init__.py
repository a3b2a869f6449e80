from .class_decoder import ClassDecoder

__all__ = ['ClassDecoder']
