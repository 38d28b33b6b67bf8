// leakguard.hpp — in-process leak checking for C++20.
//
//   #include <leakguard.hpp>
//   #include <leakguard/global_new.hpp>   // in exactly one .cpp: track every new
//
//   void handle(request& r) {
//     LEAKGUARD_SCOPE("handle");  // reports any block allocated here and not freed
//     ...
//   }
//
// Everything but the three opt-in headers (global_new.hpp, doctest.hpp,
// gtest.hpp). Build with -g for file:line in reports and with
// -fno-omit-frame-pointer for full stacks.
#pragma once

#include "leakguard/allocator.hpp"
#include "leakguard/config.hpp"
#include "leakguard/failure_injection.hpp"
#include "leakguard/handler.hpp"
#include "leakguard/memory_resource.hpp"
#include "leakguard/options.hpp"
#include "leakguard/report.hpp"
#include "leakguard/scope.hpp"
#include "leakguard/stats.hpp"
#include "leakguard/suppressions.hpp"

namespace leakguard::detail {
// LEAKGUARD_OPTIONS is read during static initialisation of any program that
// includes this header, so that a bad value is reported at start-up.
inline const bool options_loaded = (options_storage(), true);
}  // namespace leakguard::detail
