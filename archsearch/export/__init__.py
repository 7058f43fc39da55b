"""Export trained proxies to other formats (transformers checkpoints)."""

from archsearch.export.hf import ExportError, export_checkpoint, hf_config, save_hf, to_hf_state_dict

__all__ = ["ExportError", "export_checkpoint", "hf_config", "save_hf", "to_hf_state_dict"]
