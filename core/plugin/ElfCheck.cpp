#include "plugin/ElfCheck.h"

#include <cstring>
#include <elf.h>
#include <fstream>

namespace tessera::plugin {

namespace {

#if defined(__x86_64__)
constexpr unsigned kHostMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr unsigned kHostMachine = EM_AARCH64;
#elif defined(__riscv)
constexpr unsigned kHostMachine = EM_RISCV;
#else
#error "add this architecture's ELF machine number"
#endif

std::string machineName(unsigned machine) {
  switch (machine) {
  case EM_X86_64: return "x86-64";
  case EM_386: return "i386";
  case EM_AARCH64: return "aarch64";
  case EM_ARM: return "arm";
  case EM_RISCV: return "riscv";
  case EM_PPC64: return "ppc64";
  case EM_S390: return "s390";
  default: return "machine " + std::to_string(machine);
  }
}

} // namespace

std::string checkElfHeader(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char header[sizeof(Elf64_Ehdr)] = {};
  in.read(reinterpret_cast<char *>(header), sizeof(header));
  std::streamsize got = in.gcount();
  if (got < EI_NIDENT || std::memcmp(header, ELFMAG, SELFMAG) != 0)
    return "not an ELF file";
  if (header[EI_CLASS] != ELFCLASS64)
    return header[EI_CLASS] == ELFCLASS32 ? "32-bit ELF, this host is 64-bit" : "unknown ELF class";
  if (header[EI_DATA] != ELFDATA2LSB)
    return "big-endian ELF, this host is little-endian";
  if (got < static_cast<std::streamsize>(sizeof(Elf64_Ehdr)))
    return "truncated ELF header";
  Elf64_Ehdr ehdr;
  std::memcpy(&ehdr, header, sizeof(ehdr));
  if (ehdr.e_machine != kHostMachine)
    return "ELF for " + machineName(ehdr.e_machine) + ", this host is " + machineName(kHostMachine);
  if (ehdr.e_type != ET_DYN)
    return "ELF file is not a shared object";
  return {};
}

} // namespace tessera::plugin
