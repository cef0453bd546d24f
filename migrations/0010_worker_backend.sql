-- Schema version 10: what a worker's llama.cpp computes with, as its last
-- hello said ("cpu", "cuda: NVIDIA H200, 140 GiB", "cpu (GPU present,
-- llama.cpp built for CPU)"); NULL until a hello that says it.
ALTER TABLE workers ADD COLUMN backend TEXT;
