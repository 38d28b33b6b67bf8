// leakguard/config.hpp — version and the compile-time switches.
//
// LEAKGUARD_DISABLE: define it (to anything) for every TU of a program to
// compile leakguard out: macros expand to nothing, types stay usable and do
// nothing, <leakguard/global_new.hpp> replaces nothing. Set it on the build
// target (CMake option LEAKGUARD_DISABLE, Meson option) so every TU agrees.
#pragma once

#define LEAKGUARD_VERSION_MAJOR 0
#define LEAKGUARD_VERSION_MINOR 1
#define LEAKGUARD_VERSION_PATCH 0
#define LEAKGUARD_VERSION "0.1.0"

// LEAKGUARD_ENABLED is derived, always 0 or 1; it refuses to be preset.
#ifdef LEAKGUARD_ENABLED
#error "LEAKGUARD_ENABLED is derived from LEAKGUARD_DISABLE; do not define it"
#endif
#ifdef LEAKGUARD_DISABLE
#define LEAKGUARD_ENABLED 0
#else
#define LEAKGUARD_ENABLED 1
#endif

// libdw (elfutils) gives file:line and inlined frames; the build system
// defines this to 1 when it found libdw (pkg-config `libdw`).
#ifndef LEAKGUARD_HAVE_LIBDW
#define LEAKGUARD_HAVE_LIBDW 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define LEAKGUARD_LIKELY(x) __builtin_expect(!!(x), 1)
#define LEAKGUARD_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define LEAKGUARD_ALWAYS_INLINE inline __attribute__((always_inline))
#define LEAKGUARD_COLD inline __attribute__((noinline, cold))
#define LEAKGUARD_NOINLINE inline __attribute__((noinline))
#define LEAKGUARD_LAMBDA_INLINE __attribute__((always_inline))
#else
#error "leakguard supports g++ and clang++ on Linux"
#endif

// The reachability scan's word loop reads memory that is not the program's
// logic: a fuzzer's coverage hooks there see only noise, and cost most of it.
#if defined(__clang__)
#define LEAKGUARD_NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define LEAKGUARD_NO_COVERAGE
#endif

// Built with AddressSanitizer or ThreadSanitizer: they own the heap.
#if defined(__SANITIZE_ADDRESS__)
#define LEAKGUARD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LEAKGUARD_ASAN 1
#endif
#endif
#ifndef LEAKGUARD_ASAN
#define LEAKGUARD_ASAN 0
#endif
#if defined(__SANITIZE_THREAD__)
#define LEAKGUARD_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LEAKGUARD_TSAN 1
#endif
#endif
#ifndef LEAKGUARD_TSAN
#define LEAKGUARD_TSAN 0
#endif

// What the implementation translation unit defines (see
// <leakguard/implementation.hpp>): visible from every shared object even
// under -fvisibility=hidden, so that a process has one leakguard.
#define LEAKGUARD_API __attribute__((visibility("default")))

#define LEAKGUARD_CONCAT_INNER(a, b) a##b
#define LEAKGUARD_CONCAT(a, b) LEAKGUARD_CONCAT_INNER(a, b)
#define LEAKGUARD_UNIQUE(name) LEAKGUARD_CONCAT(name, __LINE__)
