# tessera_set_warnings(target): the project's warning set, applied to every
# first-party target. -Werror only with TESSERA_WERROR (CI turns it on).
function(tessera_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  if(TESSERA_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# tessera_add_core_library(name SOURCES...): one static library per core folder,
# linked into libtessera.so. The include root is core/, so headers are named
# "ir/Type.h", "support/Error.h", ...
function(tessera_add_core_library name)
  add_library(${name} STATIC ${ARGN})
  target_include_directories(${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/core>
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/abi/include>
    # Header-only SDK utilities (element codec, Schedule IR) the core shares with plugins.
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/sdk/include>)
  tessera_set_warnings(${name})
  set_property(GLOBAL APPEND PROPERTY TESSERA_CORE_LIBRARIES ${name})
endfunction()

# tessera_add_plugin(name SOURCES...): a plugin shared library
# libtessera-backend-<name>.so that exports only tessera_backend_get_api.
function(tessera_add_backend_plugin name)
  set(target tessera-backend-${name})
  add_library(${target} MODULE ${ARGN})
  set_target_properties(${target} PROPERTIES
    PREFIX "lib"
    LIBRARY_OUTPUT_DIRECTORY "${TESSERA_BUILD_PLUGIN_DIR}")
  target_link_libraries(${target} PRIVATE tessera_sdk)
  target_link_options(${target} PRIVATE
    "-Wl,--version-script=${PROJECT_SOURCE_DIR}/sdk/plugin.map" "-Wl,--no-undefined")
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS "${PROJECT_SOURCE_DIR}/sdk/plugin.map")
  tessera_set_warnings(${target})
endfunction()

# The ABI version, read from the header so there is one source of truth.
file(STRINGS "${PROJECT_SOURCE_DIR}/abi/include/tessera/tessera_types.h" _abi_lines
  REGEX "#define TESSERA_ABI_VERSION_(MAJOR|MINOR) ")
string(REGEX REPLACE ".*MAJOR ([0-9]+).*" "\\1" TESSERA_ABI_MAJOR "${_abi_lines}")
string(REGEX REPLACE ".*MINOR ([0-9]+).*" "\\1" TESSERA_ABI_MINOR "${_abi_lines}")

# tessera_add_plugin_manifest(name): configures libtessera-backend-<name>.yaml
# beside the plugin in the build tree and installs it beside it.
function(tessera_add_plugin_manifest name)
  set(out "${TESSERA_BUILD_PLUGIN_DIR}/libtessera-backend-${name}.yaml")
  configure_file("${CMAKE_CURRENT_SOURCE_DIR}/libtessera-backend-${name}.yaml.in" "${out}" @ONLY)
  install(FILES "${out}" DESTINATION "${CMAKE_INSTALL_LIBDIR}/${TESSERA_PLUGIN_SUBDIR}" COMPONENT runtime)
  install(TARGETS tessera-backend-${name} LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}/${TESSERA_PLUGIN_SUBDIR}"
    COMPONENT runtime)
endfunction()
