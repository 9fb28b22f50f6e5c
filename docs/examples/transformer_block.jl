# The transformer block (transformer_block.tsr) from Julia: compile it for
# the cpu target, run it on random bf16 inputs and print the max error
# against the float64 reference interpreter. Same program in C, Python and
# Rust beside this file.
#
# NOT RUN: Julia cannot be installed on the machines this was written on;
# CI only parses this file with the tree-sitter Julia grammar.
#
#   TESSERA_LIBRARY=/path/to/libtessera.so julia --project=bindings/julia/Tessera.jl transformer_block.jl
# Sizes: B=2, S=8, D=16, H=2 (H and D bound at compile; B, S from the
# inputs). Julia arrays are column-major, so tensor<B x S x D> is an Array
# of size (D, S, B) (Tessera.jl reverses dims).
using Random
using Tessera

path = length(ARGS) >= 1 ? ARGS[1] : joinpath(@__DIR__, "transformer_block.tsr")
source = read(path, String)
bind = "H=2,D=16"
m = Tessera.compile(source; target = "cpu", bind = bind)

B, S, D = 2, 8, 16
rng = MersenneTwister(42)
shapes = [(D, S, B), (D,), (D,), (D, D), (D, D), (D, D), (D, D), (D,), (D,), (4D, D), (D, 4D)]
inputs = [BF16.((2 .* rand(rng, Float32, s...) .- 1) .* (length(s) == 2 ? 0.2f0 : 1.0f0)) for s in shapes]

out = m(inputs...)
ref = Tessera.reference(source, inputs...; bind = bind)
err = maximum(abs.(Float64.(out) .- Float64.(ref)))
println("transformer_block on cpu: output $(reverse(size(out))) bf16, max abs error vs reference $(err)")
exit(err > 0.1 ? 1 : 0)
