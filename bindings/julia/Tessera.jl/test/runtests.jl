# Tests of Tessera.jl (NOT RUN: Julia is not installed here; CI parses this
# file with the tree-sitter Julia grammar only).
using Test
using Tessera

const ADD = """
func @main(%a: tensor<N x f32>, %b: tensor<N x f32>) -> tensor<N x f32> {
  %c = add(%a, %b)
  return %c
}
"""

@testset "Tessera.jl" begin
    @test any(p -> p.name == "cpu" && p.state == "loaded", plugins())
    m = Tessera.compile(ADD; target = "cpu")
    a, b = rand(Float32, 7), rand(Float32, 7)
    @test m(a, b) ≈ a .+ b
    @test Tessera.reference(ADD, a, b) ≈ a .+ b
    @test_throws TesseraError Tessera.compile("func @main(")
    @test_throws TesseraError m(a, rand(Float32, 8))
    close(m)
    @test_throws TesseraError m(a, b)
end
