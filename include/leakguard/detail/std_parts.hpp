// leakguard/detail/std_parts.hpp — the parts of the standard library that
// leakguard's declarations need: std::function, allocator_traits and
// to_address, clocks and durations.
//
// <functional>, <memory> and <chrono> bring much more (algorithms, smart
// pointers, calendars and formatting): tens of thousands of lines in every
// file that includes <leakguard.hpp>. With libstdc++, whose <bits/...>
// headers are self-contained, only the parts are included; with any other
// library, the full headers.
#pragma once

#if defined(__GLIBCXX__) && __has_include(<bits/std_function.h>) && __has_include(<bits/chrono.h>) && \
    __has_include(<bits/alloc_traits.h>) && __has_include(<bits/ptr_traits.h>)
#include <bits/alloc_traits.h>
#include <bits/allocator.h>
#include <bits/chrono.h>
#include <bits/ptr_traits.h>
#include <bits/std_function.h>
#else
#include <chrono>
#include <functional>
#include <memory>
#endif
