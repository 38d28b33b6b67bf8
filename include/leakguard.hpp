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
// Everything but the opt-in headers (global_new.hpp, implementation.hpp,
// doctest.hpp, gtest.hpp), as declarations: light to include anywhere. The
// runtime is compiled in the one .cpp that includes <leakguard/global_new.hpp>
// (or, without it, <leakguard/implementation.hpp>). Build with -g for
// file:line in reports and with -fno-omit-frame-pointer for full stacks.
#pragma once

#include "leakguard/allocator.hpp"
#include "leakguard/config.hpp"
#include "leakguard/failure_injection.hpp"
#include "leakguard/handler.hpp"
#include "leakguard/memory_resource.hpp"
#include "leakguard/metrics.hpp"
#include "leakguard/options.hpp"
#include "leakguard/report.hpp"
#include "leakguard/scope.hpp"
#include "leakguard/stats.hpp"
#include "leakguard/suppressions.hpp"
#include "leakguard/zones.hpp"
