// tessera-ref-eval: runs one function of a .tsr file through the reference
// interpreter on .npy inputs and writes .npy outputs (float64). Used by the
// pytest suite in this folder to compare the interpreter against NumPy.
//
//   tessera-ref-eval FILE.tsr FUNCTION [-i IN.npy]... [-o OUT.npy]... [--decompose]
//
// Prints one line per output, "output N: tensor<2x3xf32>", to stdout.
// Exit status: 0 success, 1 an error (rendered on stderr as
// "error [code name]: message"), 2 bad usage.
#include "Npy.h"

#include "ir/Module.h"
#include "reference/Evaluator.h"
#include "shape/Decompose.h"
#include "text/Parser.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

using namespace tessera;

namespace {

int fail(const Error &e) {
  std::cerr << "error [" << errorCodeName(e.code()) << "]: " << e.render() << "\n";
  return 1;
}

int usage() {
  std::cerr << "usage: tessera-ref-eval FILE.tsr FUNCTION [-i IN.npy]... [-o OUT.npy]... [--decompose]\n";
  return 2;
}

} // namespace

int main(int argc, char **argv) {
  std::vector<std::string> positional, inputs, outputs;
  bool decompose = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "-i" || a == "-o") && i + 1 < argc)
      (a == "-i" ? inputs : outputs).push_back(argv[++i]);
    else if (a == "--decompose")
      decompose = true;
    else if (!a.empty() && a[0] == '-')
      return usage();
    else
      positional.push_back(a);
  }
  if (positional.size() != 2)
    return usage();

  std::ifstream file(positional[0], std::ios::binary);
  if (!file)
    return fail(makeError(ErrorCode::IOError, "cannot open " + positional[0]));
  std::stringstream text;
  text << file.rdbuf();
  Expected<ir::Module> module = text::parseModule(text.str(), positional[0]);
  if (!module)
    return fail(module.error());
  if (decompose)
    if (Error e = shape::decomposeComposites(*module))
      return fail(e);
  const ir::Function *fn = module->findFunction(positional[1]);
  if (!fn)
    return fail(makeError(ErrorCode::NotFound, "no function @" + positional[1] + " in " + positional[0]));

  std::vector<ref::RefTensor> args;
  for (const std::string &path : inputs) {
    Expected<ref::RefTensor> t = ref::npy::read(path);
    if (!t)
      return fail(t.error());
    args.push_back(t.take());
  }
  Expected<std::vector<ref::RefTensor>> results = ref::evaluate(*fn, std::move(args));
  if (!results)
    return fail(results.error());
  if (!outputs.empty() && outputs.size() != results->size())
    return fail(makeError(ErrorCode::InvalidArgument, "@" + positional[1] + " returns " +
                                                          std::to_string(results->size()) + " values, " +
                                                          std::to_string(outputs.size()) + " -o paths given"));
  for (size_t i = 0; i < results->size(); ++i) {
    std::cout << "output " << i << ": " << (*results)[i].typeString() << "\n";
    if (!outputs.empty())
      if (Error e = ref::npy::write(outputs[i], (*results)[i]))
        return fail(e);
  }
  return 0;
}
