// CHECK(cond) for the fuzz targets: a failed check prints the target, the condition and the
// line, then traps, so libFuzzer saves the input (scripts/fuzz.sh keeps it under artifacts/).
#pragma once

#include <errno.h>  // program_invocation_short_name (glibc): the target's name

#include <cstdio>

#define CHECK(cond)                                                                                  \
  do {                                                                                               \
    if (!(cond)) {                                                                                   \
      std::fprintf(stderr, "%s: check failed: %s (line %d)\n", program_invocation_short_name, #cond, \
                   __LINE__);                                                                        \
      __builtin_trap();                                                                              \
    }                                                                                                \
  } while (0)
