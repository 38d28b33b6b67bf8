# Builds and runs one consumer project the way a user would (called by CTest).
#
#   cmake -D MODE=install    -D BUILD_DIR=<leakguard build> -D PREFIX=<dir> [-D CONFIG=..] -P run_consumer.cmake
#   cmake -D MODE=cmake      -D SOURCE_DIR=<project> -D BUILD_DIR=<dir> -D CXX=<compiler>
#         -D GENERATOR=<gen> [-D PREFIX=<install prefix>] -P run_consumer.cmake
#   cmake -D MODE=pkg-config -D SOURCE_DIR=tests/consumers -D BUILD_DIR=<dir> -D CXX=.. -D PREFIX=.. -P ..
#   cmake -D MODE=meson      -D SOURCE_DIR=<meson project> -D BUILD_DIR=<dir> -D CXX=..
#         -D MESON=<meson> -D LEAKGUARD_SOURCE_DIR=<repo root> -P ..
#
# The consumer's main() returns 0 only if leakguard reported its deliberate leak.
cmake_minimum_required(VERSION 3.20)

function(run)
  string(REPLACE ";" " " _pretty "${ARGN}")
  message(STATUS "run: ${_pretty}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${_pretty}")
  endif()
endfunction()

# The consumer sources live next to this script.
set(_here "${CMAKE_CURRENT_LIST_DIR}")

if(MODE STREQUAL "install")
  file(REMOVE_RECURSE "${PREFIX}")
  set(_config)
  if(CONFIG)
    set(_config --config "${CONFIG}")
  endif()
  run("${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}" ${_config})
  return()
endif()

file(REMOVE_RECURSE "${BUILD_DIR}")
file(MAKE_DIRECTORY "${BUILD_DIR}")

if(MODE STREQUAL "cmake")
  run("${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${BUILD_DIR}" -G "${GENERATOR}"
      "-DCMAKE_CXX_COMPILER=${CXX}" -DCMAKE_BUILD_TYPE=Debug
      "-DCMAKE_PREFIX_PATH=${PREFIX}"
      # Only the prefix we just installed may satisfy find_package(leakguard).
      -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
  run("${CMAKE_COMMAND}" --build "${BUILD_DIR}" --config Debug)
  set(_exe "${BUILD_DIR}/consumer")
  if(NOT EXISTS "${_exe}")
    set(_exe "${BUILD_DIR}/Debug/consumer")  # multi-config generators
  endif()
  run("${_exe}")

elseif(MODE STREQUAL "pkg-config")
  find_program(PKG_CONFIG NAMES pkg-config pkgconf REQUIRED)
  file(GLOB_RECURSE _pc "${PREFIX}/*/leakguard.pc")
  if(NOT _pc)
    message(FATAL_ERROR "no leakguard.pc under ${PREFIX}")
  endif()
  list(GET _pc 0 _pc)
  get_filename_component(_pcdir "${_pc}" DIRECTORY)
  set(ENV{PKG_CONFIG_PATH} "${_pcdir}")
  foreach(_what cflags libs)
    execute_process(COMMAND "${PKG_CONFIG}" --${_what} leakguard
                    OUTPUT_VARIABLE _out OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "pkg-config --${_what} leakguard failed")
    endif()
    separate_arguments(_${_what} UNIX_COMMAND "${_out}")
    message(STATUS "pkg-config --${_what}: ${_out}")
  endforeach()
  run("${CXX}" -g -fno-omit-frame-pointer ${_cflags} "${SOURCE_DIR}/main.cpp"
      ${_libs} -o "${BUILD_DIR}/consumer")
  run("${BUILD_DIR}/consumer")

elseif(MODE STREQUAL "meson")
  # A throwaway copy of the consumer with leakguard linked in as subprojects/leakguard.
  set(_src "${BUILD_DIR}/src")
  file(COPY "${SOURCE_DIR}/" DESTINATION "${_src}")
  file(COPY "${_here}/main.cpp" DESTINATION "${_src}")
  file(MAKE_DIRECTORY "${_src}/subprojects")
  file(CREATE_LINK "${LEAKGUARD_SOURCE_DIR}" "${_src}/subprojects/leakguard" SYMBOLIC)
  run("${CMAKE_COMMAND}" -E env "CXX=${CXX}"
      "${MESON}" setup "${BUILD_DIR}/build" "${_src}" --force-fallback-for=leakguard)
  run("${MESON}" compile -C "${BUILD_DIR}/build")
  run("${BUILD_DIR}/build/consumer")

else()
  message(FATAL_ERROR "unknown MODE '${MODE}'")
endif()
