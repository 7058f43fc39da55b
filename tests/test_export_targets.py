"""Full-size exports load in the library each targets: transformers, fla, OLMo-core (as text)."""

import ast
import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
import yaml

from archsearch.cli import main
from archsearch.export.pattern import export_pattern
from archsearch.export.targets import OLMO_HYBRID_7B, TargetError, export_target, target_config
from archsearch.model.cost import param_count
from archsearch.pattern import parse
from archsearch.scaling.rule import DEFAULT_KINDS

OLMO_HYBRID_7B_PARAMS = 7_430_870_688


def load_hf_on_meta(folder: Path):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder)
    with torch.device("meta"):  # shapes only: no 30 GB of weights
        model = AutoModelForCausalLM.from_config(config)
    return config, model


def gated_deltanet_config_class():
    """fla's GatedDeltaNetConfig; loaded from its own files when ``fla.models`` cannot import.

    ``fla.models`` imports every model and so the Triton kernels, which a CPU machine may lack;
    the config class needs only transformers. Installing triton here is not an option: it would
    make transformers' OlmoHybrid pick fla kernels on CPU (docs/BACKGROUND.md, "fla").
    """
    try:
        from fla.models import GatedDeltaNetConfig

        return GatedDeltaNetConfig
    except ImportError:
        pass
    spec = importlib.util.find_spec("fla")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("fla is not installed")
    root = Path(next(iter(spec.submodule_search_locations))) / "models"
    names = ("fla.models", "fla.models.configuration_utils")
    saved = {name: sys.modules.get(name) for name in names}
    try:
        stub = types.ModuleType("fla.models")
        stub.__path__ = [str(root)]
        sys.modules["fla.models"] = stub
        sys.modules[names[1]] = _load(names[1], root / "configuration_utils.py")
        module = _load("_fla_gdn_config", root / "gated_deltanet/configuration_gated_deltanet.py")
        return module.GatedDeltaNetConfig
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _load(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config_of(pattern: str):
    return target_config(parse(pattern, DEFAULT_KINDS), DEFAULT_KINDS, {"S": 64})


# -- hf -------------------------------------------------------------------------------------------


def test_hf_olmo_hybrid_7b_loads_and_has_the_exact_parameter_count(tmp_path):
    export_target(config_of("(GGGA)*8"), "hf", tmp_path)
    config, model = load_hf_on_meta(tmp_path)
    assert type(config).__name__ == "OlmoHybridConfig"
    assert config.layer_types == (["linear_attention"] * 3 + ["full_attention"]) * 8
    assert (config.hidden_size, config.intermediate_size, config.num_hidden_layers) == (
        3840, 11008, 32)
    assert (config.linear_key_head_dim, config.linear_value_head_dim) == (96, 192)
    assert (config.pad_token_id, config.eos_token_id) == (100277, 100257)
    assert sum(p.numel() for p in model.parameters()) == OLMO_HYBRID_7B_PARAMS


def test_hf_keeps_the_pattern_depth_and_placement(tmp_path):
    export_target(config_of("AGGGGGGA"), "hf", tmp_path)
    config, model = load_hf_on_meta(tmp_path)
    assert config.num_hidden_layers == 8
    assert [i for i, t in enumerate(config.layer_types) if t == "full_attention"] == [0, 7]
    assert len(model.model.layers) == 8


def test_hf_all_attention_is_an_olmo3_config(tmp_path):
    written = export_target(config_of("A*32"), "hf", tmp_path)
    config, model = load_hf_on_meta(tmp_path)
    assert type(config).__name__ == "Olmo3Config"
    assert set(config.layer_types) == {"full_attention"}
    # the cost model counts the same model: 32 attention blocks at Olmo Hybrid 7B's widths
    assert sum(p.numel() for p in model.parameters()) == param_count(config_of("A*32"))
    info = json.loads((tmp_path / "export.json").read_text())
    assert info["pattern"] == "A*32" and any("Olmo3Config" in n for n in info["notes"])
    assert {p.name for p in written} == {"config.json", "export.json"}


def test_hf_refuses_windowed_attention_in_a_hybrid_and_writes_nothing(tmp_path):
    from archsearch.export.hf import ExportError

    with pytest.raises(ExportError, match="sliding-window"):
        export_target(config_of("GGGS"), "hf", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- fla ------------------------------------------------------------------------------------------


def test_fla_config_constructs_with_the_attention_layers(tmp_path):
    export_target(config_of("(GGGA)*8"), "fla", tmp_path)
    exported = json.loads((tmp_path / "config.json").read_text())
    config = gated_deltanet_config_class()(**exported)
    assert config.model_type == "gated_deltanet"
    assert config.attn["layers"] == list(range(3, 32, 4))
    assert (config.attn["num_heads"], config.attn["num_kv_heads"]) == (30, 30)
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size) == (
        3840, 32, 11008)
    assert (config.num_heads, config.head_dim, config.expand_v) == (30, 96, 2.0)
    assert config.allow_neg_eigval is True and config.use_gate is True


def test_fla_pure_stacks_and_windowed_layers(tmp_path):
    cls = gated_deltanet_config_class()
    export_target(config_of("G*8"), "fla", tmp_path / "g")
    assert cls(**json.loads((tmp_path / "g/config.json").read_text())).attn is None
    export_target(config_of("GSGA"), "fla", tmp_path / "s")
    config = cls(**json.loads((tmp_path / "s/config.json").read_text()))
    by_window = {entry["window_size"]: entry["layers"] for entry in config.attn}
    assert by_window == {OLMO_HYBRID_7B.sliding_window: [1], None: [3]}


# -- olmo-core ------------------------------------------------------------------------------------


def test_olmo_core_snippet_parses_and_has_the_block_pattern(tmp_path):
    export_target(config_of("(GGGA)*8"), "olmo-core", tmp_path)
    source = (tmp_path / "olmo_core_model.py").read_text()
    tree = ast.parse(source)
    assigned = {t.id: node.value for node in tree.body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert ast.literal_eval(assigned["BLOCK_PATTERN"]) == ["gdn", "gdn", "gdn", "attn"]
    assert "model_config" in assigned and "gdn_block" in assigned and "attn_block" in assigned
    settings = yaml.safe_load((tmp_path / "olmo_core_model.yaml").read_text())
    assert settings["block_pattern"] == ["gdn", "gdn", "gdn", "attn"]
    assert (settings["d_model"], settings["n_layers"], settings["vocab_size"]) == (3840, 32, 100352)
    gdn = settings["block"]["gdn"]["sequence_mixer"]
    assert (gdn["n_heads"], gdn["head_dim"], gdn["expand_v"]) == (30, 96, 2.0)
    attn = settings["block"]["attn"]
    assert attn["name"] == "reordered_norm" and attn["sequence_mixer"]["n_heads"] == 30
    assert settings["block"]["gdn"]["feed_forward"]["hidden_size"] == 11008


def test_olmo_core_pattern_without_a_period_is_written_out_in_full(tmp_path):
    export_target(config_of("AGGGGGGA"), "olmo-core", tmp_path)
    settings = yaml.safe_load((tmp_path / "olmo_core_model.yaml").read_text())
    assert settings["block_pattern"] == ["attn"] + ["gdn"] * 6 + ["attn"]
    ast.parse((tmp_path / "olmo_core_model.py").read_text())


# -- the command line -----------------------------------------------------------------------------


def test_cli_pattern_accepts_any_spelling(tmp_path, capsys):
    for i, spelling in enumerate(["(GGGA)*8", "G*3A" * 8, "(G G G A) * 8"]):
        assert main(["export", "--pattern", spelling, "--format", "olmo-core",
                     str(tmp_path / str(i))]) == 0
        info = json.loads((tmp_path / str(i) / "export.json").read_text())
        assert info["pattern"] == "(GGGA)*8"
    assert "olmo-core config for olmo-hybrid-7b" in capsys.readouterr().out


def test_cli_depth_redraws_a_pattern_with_its_ratio_and_placement(tmp_path):
    written = export_pattern("GGGA", "olmo-core", tmp_path, depth=32)
    assert json.loads(written[-1].read_text())["pattern"] == "(GGGA)*8"


def test_cli_checkpoint_export_calls_the_weights_exporter(tmp_path, monkeypatch, capsys):
    from archsearch.export import hf

    calls = []
    monkeypatch.setattr(hf, "export_checkpoint",
                        lambda checkpoint, out, format="hf": calls.append((checkpoint, out, format))
                        or Path(out))
    assert main(["export", "--checkpoint", "ckpt", "--format", "hf", str(tmp_path)]) == 0
    assert calls == [("ckpt", str(tmp_path), "hf")]
    assert main(["export", "--checkpoint", "ckpt", "--format", "fla", str(tmp_path)]) == 2


def test_cli_unknown_target_is_one_line(tmp_path, capsys):
    assert main(["export", "--pattern", "GGGA", "--target", "olmo-70b", str(tmp_path)]) == 2
    assert "unknown target 'olmo-70b'" in capsys.readouterr().err


def test_target_error_names_an_unknown_symbol_kind():
    with pytest.raises(TargetError, match="'X'"):
        target_config(("G", "X"), DEFAULT_KINDS)
