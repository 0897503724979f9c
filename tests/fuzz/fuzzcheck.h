// The invariant check every fuzz target uses: FUZZ_CHECK(condition) calls the target's own
// `[[noreturn]] void violated(const char *what, int line)`, which prints what it knows of the input (through
// reportViolation()) and aborts, so that libFuzzer keeps the reproducer.
#pragma once

#include <cstdio>

#define FUZZ_CHECK(condition)                                                                                \
    do {                                                                                                     \
        if (!(condition))                                                                                    \
            violated(#condition, __LINE__);                                                                  \
    } while (false)

namespace fuzzsupport {

/// The first line of every report: which target, which invariant, where.
inline void reportViolation(const char *target, const char *what, int line)
{
    std::fprintf(stderr, "%s: invariant violated (line %d): %s\n", target, line, what);
}

} // namespace fuzzsupport
