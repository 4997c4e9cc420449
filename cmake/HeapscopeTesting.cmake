# heapscope_add_test(NAME name COMMAND command [args...] [RUN_OPTIONS options...]
#                    [WORKING_DIRECTORY dir])
#
# Adds a CTest test that runs COMMAND under `heapscope run` with the gates on: the test fails
# when the program fails, makes a heap error, or leaks (definitely or possibly lost blocks,
# memcheck's defaults), and its output then holds heapscope's text report with each leak's
# stack by function. The JSON and HTML reports go to
# ${CMAKE_CURRENT_BINARY_DIR}/heapscope/<name>.json and .html. COMMAND may name an executable
# target of the project. RUN_OPTIONS are more `heapscope run` options (man heapscope), e.g.
# --show-leak-kinds all, --suppressions FILE, --fail-on-leak-bytes 4K.
function(heapscope_add_test)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "NAME;WORKING_DIRECTORY" "COMMAND;RUN_OPTIONS")
  if(NOT arg_NAME OR NOT arg_COMMAND)
    message(FATAL_ERROR "heapscope_add_test: NAME and COMMAND are required")
  endif()
  list(POP_FRONT arg_COMMAND program)
  if(TARGET ${program})
    set(program $<TARGET_FILE:${program}>)
  endif()
  set(reports ${CMAKE_CURRENT_BINARY_DIR}/heapscope)
  file(MAKE_DIRECTORY ${reports})
  set(directory ${CMAKE_CURRENT_BINARY_DIR})
  if(arg_WORKING_DIRECTORY)
    set(directory ${arg_WORKING_DIRECTORY})
  endif()
  # 86: heapscope's status for a heap error or a counted leak, distinct from usual exit codes.
  add_test(NAME ${arg_NAME} WORKING_DIRECTORY ${directory}
           COMMAND $<TARGET_FILE:heapscope::heapscope> run --error-exitcode 86 --color=never
                   --json ${reports}/${arg_NAME}.json --html ${reports}/${arg_NAME}.html
                   ${arg_RUN_OPTIONS} -- ${program} ${arg_COMMAND})
endfunction()
