# Writes OUT, a header defining FLOWSCOPE_COMMIT: the git commit of SRC
# (12 hex digits, "-dirty" when tracked files differ from it), or "unknown"
# when SRC is not the top of a git checkout (a release tarball, also one
# unpacked inside some other repository).  Run at every build (a commit
# needs no new cmake run); the header is rewritten only when the text
# changes, so an unchanged commit recompiles nothing.
find_package(Git QUIET)
set(commit "unknown")
if(GIT_FOUND)
  execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SRC}" rev-parse --show-toplevel
                  OUTPUT_VARIABLE top ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
  execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SRC}" rev-parse --short=12 HEAD
                  OUTPUT_VARIABLE head RESULT_VARIABLE rc ERROR_QUIET
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  file(REAL_PATH "${SRC}" src_real)
  if(top)
    file(REAL_PATH "${top}" top)
  endif()
  if(rc EQUAL 0 AND head AND top STREQUAL src_real)
    set(commit "${head}")
    execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SRC}" diff-index --quiet HEAD --
                    RESULT_VARIABLE dirty ERROR_QUIET)
    if(NOT dirty EQUAL 0)
      set(commit "${commit}-dirty")
    endif()
  endif()
endif()
set(text "#define FLOWSCOPE_COMMIT \"${commit}\"\n")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT "${old}" STREQUAL "${text}")
  file(WRITE "${OUT}" "${text}")
endif()
