# Compiles and links SOURCES (comma-separated) into one program, which must FAIL to
# build (compile or link) with output matching EXPECT (a regular expression).
#
#   cmake -D CXX=.. -D INCLUDE=<leakguard include dir> -D WORK=<dir> -D SOURCES=a.cpp,b.cpp
#         -D EXPECT=<regex> -P expect_link_error.cmake
cmake_minimum_required(VERSION 3.20)
string(REPLACE "," ";" SOURCES "${SOURCES}")
execute_process(COMMAND "${CXX}" -std=c++20 -I "${INCLUDE}" ${SOURCES} -o "${WORK}/link_error_program"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "linked, but should not have: ${SOURCES}")
endif()
if(NOT "${out}${err}" MATCHES "${EXPECT}")
  message(FATAL_ERROR "the link failed without naming the fix (expected /${EXPECT}/):\n${out}${err}")
endif()
message(STATUS "failed to link, as expected, with: /${EXPECT}/")
