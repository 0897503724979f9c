# One INTERFACE target that carries the project's warnings and strictness defines.
# Every KeyRelay target links it; third-party code does not.
add_library(keyrelay_common_config INTERFACE)
add_library(KeyRelay::CommonConfig ALIAS keyrelay_common_config)

target_compile_options(keyrelay_common_config INTERFACE
    $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wpedantic -Werror -Wshadow -Wnon-virtual-dtor
        -Wcast-align -Woverloaded-virtual -Wformat=2>
    # clang -Wpedantic flags every `qCDebug(category) << ...`: Qt's logging macros take an empty __VA_ARGS__.
    $<$<CXX_COMPILER_ID:Clang>:-Wno-gnu-zero-variadic-macro-arguments>)

target_compile_definitions(keyrelay_common_config INTERFACE
    QT_NO_CAST_FROM_ASCII
    QT_NO_CAST_TO_ASCII
    QT_NO_CAST_FROM_BYTEARRAY
    QT_NO_URL_CAST_FROM_STRING
    QT_NO_NARROWING_CONVERSIONS_IN_CONNECT
    QT_NO_FOREACH
    QT_STRICT_ITERATORS
    QT_USE_QSTRINGBUILDER
    QT_DISABLE_DEPRECATED_BEFORE=0x060400
    KEYRELAY_VERSION="${PROJECT_VERSION}")

if(KEYRELAY_SANITIZE)
    # Every UBSan report stops the program, except "vptr": that one follows UBSAN_OPTIONS' halt_on_error (CI
    # sets 1). GCC 12's runtime checks a vtable through a pipe() and reports a sound object as "invalid
    # vptr" when the process has no descriptor left, which tst_it_hardening causes on purpose (see there).
    target_compile_options(keyrelay_common_config INTERFACE
        -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
        -fsanitize-recover=vptr)
    target_link_options(keyrelay_common_config INTERFACE -fsanitize=address,undefined)
endif()

# Fuzzing build (tests/fuzz): every KeyRelay target, the proxy core included, gets the sanitizers and
# libFuzzer's coverage instrumentation; only the fuzz targets themselves link libFuzzer's main().
if(KEYRELAY_FUZZ)
    if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
        message(FATAL_ERROR "KEYRELAY_FUZZ needs clang: configure with -DCMAKE_CXX_COMPILER=clang++")
    endif()
    target_compile_options(keyrelay_common_config INTERFACE
        -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
    target_link_options(keyrelay_common_config INTERFACE -fsanitize=address,undefined)
endif()

# Hardening of optimised builds, as Debian's dpkg-buildflags gives its own packages (lintian checks the .deb):
# checked libc calls, stack protector, a read-only GOT resolved at start-up. Not in Debug (_FORTIFY_SOURCE needs
# optimisation) and not with the sanitizers or the fuzzers.
if(NOT KEYRELAY_SANITIZE AND NOT KEYRELAY_FUZZ AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(keyrelay_common_config INTERFACE
        "$<$<NOT:$<CONFIG:Debug>>:-U_FORTIFY_SOURCE;-D_FORTIFY_SOURCE=2>" -fstack-protector-strong)
    target_link_options(keyrelay_common_config INTERFACE LINKER:-z,relro LINKER:-z,now)
endif()
