// leakguard/impl/one_runtime.hpp — noticing a second copy of the runtime.
//
// A process has one leakguard: its runtime is compiled into one translation
// unit of the program, and shared libraries and plugins reach it by name.
// A plugin that compiles the runtime itself (includes global_new.hpp or
// implementation.hpp) gets a second copy, with books of its own: some of its
// scopes and blocks would be invisible to the program's, or the reverse.
// Each copy asks the dynamic linker which runtime the process finds by name
// first; a copy that is not that one says so, once, at load.
#pragma once

#include <dlfcn.h>

#include <cstdio>

namespace leakguard::detail {

using runtime_identity_fn = const void* (*)() noexcept;

// `self` is this copy's own identity (not looked up by name).
inline void warn_if_second_runtime(const void* self) noexcept {
  auto first = reinterpret_cast<runtime_identity_fn>(dlsym(RTLD_DEFAULT, "leakguard_runtime_identity"));
  if (!first || first() == self) return;
  Dl_info mine{}, theirs{};
  const char* here = dladdr(self, &mine) && mine.dli_fname && *mine.dli_fname ? mine.dli_fname : "a module";
  const char* there =
      dladdr(first(), &theirs) && theirs.dli_fname && *theirs.dli_fname ? theirs.dli_fname : "the program";
  std::fprintf(stderr,
               "leakguard: %s holds a second copy of leakguard's runtime (one is already in %s); their books "
               "are apart, so leaks may go unseen. Include <leakguard/global_new.hpp> or "
               "<leakguard/implementation.hpp> in the program only; libraries and plugins include "
               "<leakguard.hpp>.\n",
               here, there);
}

}  // namespace leakguard::detail
