# Finds GCC's libbacktrace (file:line symbolization) for the leakguard target.
#
# g++ ships <backtrace.h> and libbacktrace.a in its *private* directory
# (/usr/lib/gcc/<triple>/<ver>/), which also holds GCC's own stddef.h etc.
# Adding that directory to the include path would confuse clang, so only the
# single backtrace.h is copied into a build-tree directory of its own.
#
# Sets in the caller's scope:
#   LEAKGUARD_LIBBACKTRACE_FOUND        TRUE/FALSE
#   LEAKGUARD_LIBBACKTRACE_LIBRARY      absolute path of libbacktrace.a
#   LEAKGUARD_LIBBACKTRACE_INCLUDE_DIR  build-tree dir holding only backtrace.h

set(LEAKGUARD_LIBBACKTRACE_FOUND FALSE)

# Ask a compiler driver where it keeps a file; drivers echo the bare name
# back when they do not know it, hence the IS_ABSOLUTE/EXISTS test.
function(_leakguard_print_file_name driver name out_var)
  set(${out_var} "" PARENT_SCOPE)
  execute_process(COMMAND "${driver}" "-print-file-name=${name}"
                  OUTPUT_VARIABLE path OUTPUT_STRIP_TRAILING_WHITESPACE
                  ERROR_QUIET RESULT_VARIABLE rc)
  if(rc EQUAL 0 AND IS_ABSOLUTE "${path}" AND EXISTS "${path}")
    get_filename_component(path "${path}" REALPATH)
    set(${out_var} "${path}" PARENT_SCOPE)
  endif()
endfunction()

# The project's own compiler first (clang also searches its GCC installation),
# then a plain gcc. libbacktrace is C with a stable ABI, so any GCC's copy works.
find_program(LEAKGUARD_GCC_DRIVER NAMES gcc cc DOC "GCC driver used to locate libbacktrace")
mark_as_advanced(LEAKGUARD_GCC_DRIVER)
set(_lg_lib "")
set(_lg_hdr "")
foreach(_lg_driver IN ITEMS "${CMAKE_CXX_COMPILER}" "${LEAKGUARD_GCC_DRIVER}")
  if(_lg_driver AND (NOT _lg_lib OR NOT _lg_hdr))
    _leakguard_print_file_name("${_lg_driver}" libbacktrace.a _lg_try_lib)
    _leakguard_print_file_name("${_lg_driver}" include/backtrace.h _lg_try_hdr)
    if(_lg_try_lib AND _lg_try_hdr)
      set(_lg_lib "${_lg_try_lib}")
      set(_lg_hdr "${_lg_try_hdr}")
    endif()
  endif()
endforeach()

if(_lg_lib AND _lg_hdr)
  set(LEAKGUARD_LIBBACKTRACE_FOUND TRUE)
  set(LEAKGUARD_LIBBACKTRACE_LIBRARY "${_lg_lib}")
  set(LEAKGUARD_LIBBACKTRACE_INCLUDE_DIR "${PROJECT_BINARY_DIR}/leakguard_backtrace")
  configure_file("${_lg_hdr}" "${LEAKGUARD_LIBBACKTRACE_INCLUDE_DIR}/backtrace.h" COPYONLY)
  message(STATUS "leakguard: libbacktrace found: ${_lg_lib}")
else()
  message(STATUS "leakguard: libbacktrace not found; reports show function names only")
endif()
unset(_lg_lib)
unset(_lg_hdr)
unset(_lg_try_lib)
unset(_lg_try_hdr)
unset(_lg_driver)
