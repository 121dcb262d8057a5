"""The Nsight Compute summary of benchmarks/profile_gpu_kernels.py on a small source export."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
_SPEC = importlib.util.spec_from_file_location("profile_gpu_kernels", ROOT / "benchmarks" / "profile_gpu_kernels.py")
profile = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(profile)

EXPORT = '''"Kernel Name","ckf_seeds(...)",""
"Address","Source","Warp Stall Sampling (All Samples)","Instructions Executed","Thread Instructions Executed","stall_no_inst","stall_wait","stall_wait (Not Issued)"
"0x10","      DFMA R2, R4, R6, R2","60","1,000","8000","45","15","3"
"0x20","@P0   BRA 0x40","30","500","1000","30","0","0"
"0x30","      DMUL R2, R2, R8","10","500","16000","5","5","1"
'''


def test_summary_of_a_source_export(tmp_path):
    path = tmp_path / "source.csv"
    path.write_text(EXPORT, encoding="utf-8")
    result = profile.summary(*profile.source_table(str(path)), top=2)
    assert result["rows"] == 3 and result["stall_samples"] == 100 and result["warp_instructions"] == 2000
    assert result["active_threads_per_warp"] == pytest.approx(25000 / 2000)
    assert result["stall_reasons"] == pytest.approx({"no_inst": 0.8, "wait": 0.2})  # issued samples only
    assert result["opcodes"] == {"DFMA": 1000, "BRA": 500, "DMUL": 500}  # predicates skipped
    assert result["rows_with_half_of_the_stalls"] == 1 and result["rows_with_90_percent"] == 2
    assert [row[0] for row in result["top"]] == ["0x10", "0x20"]


def test_a_file_without_a_source_table_is_one_sentence(tmp_path):
    path = tmp_path / "lines.csv"
    path.write_text('"File Name","ckf.py"\n"Line No","Source"\n"1","x = 1"\n', encoding="utf-8")
    with pytest.raises(SystemExit, match="holds no ncu source table"):
        profile.source_table(str(path))
    with pytest.raises(SystemExit, match="Cannot read"):
        profile.source_table(str(tmp_path / "missing.csv"))
