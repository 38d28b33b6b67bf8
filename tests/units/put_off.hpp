// tests/units/put_off.hpp — functions of compilation units of their own,
// each called by one test case only (suppressions_test.cpp): a unit whose
// debug info no lookup has read when the case begins.
#pragma once

namespace lgt_put_off {
// put_off_a.cpp: two statics a user's code builds on first use.
int* first_static();
int* second_static();
// put_off_b.cpp: a block nobody keeps.
int* leak();
// put_off_c.cpp: a block nobody keeps, allocated in make_inline(), inlined
// into it: only its unit's debug info names that function.
int* suppressed_leak();
// put_off_d.cpp: a static, judged beside suppressed_leak()'s block.
int* third_static();
// put_off_e.cpp: a static made in make_kept(), inlined into it.
int* suppressed_static();
}  // namespace lgt_put_off
