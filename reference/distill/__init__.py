"""Reference distillation chain: quantization-aware students, integer inference and bit-operation accounting."""
