# Installs capcheck as a CMake package: headers, the layer libraries, the torch
# module, the CLI, and capcheckConfig.cmake / capcheckConfigVersion.cmake with
# capcheck:: imported targets, for find_package(capcheck).
include(CMakePackageConfigHelpers)
if(TARGET capcheck_gtest_main)
  set(CAPCHECK_HAVE_GTEST_MAIN ON)
else()
  set(CAPCHECK_HAVE_GTEST_MAIN OFF)
endif()

set(CAPCHECK_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/capcheck)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/src/include/capcheck ${PROJECT_SOURCE_DIR}/sim/include/capcheck
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

get_property(_capcheck_layers GLOBAL PROPERTY CAPCHECK_LAYERS)
set(_capcheck_targets ${_capcheck_layers} capcheck_sim)
foreach(target IN ITEMS capcheck_gtest_main capcheck_cuda capcheck_torch_graph capcheck_torch_subject
                       capcheck_plugin capcheck_torch_plugin)
  if(TARGET ${target})
    list(APPEND _capcheck_targets ${target})
  endif()
endforeach()
install(TARGETS ${_capcheck_targets} EXPORT capcheckTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET capcheck_torch)
  # The module the registry loads on first use (Note [LibTorch on first use]);
  # consumers link capcheck::torch only to call make_torch_backend() directly.
  install(TARGETS capcheck_torch EXPORT capcheckTargets LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()
if(TARGET capcheck)
  # Exported as capcheck::capcheck, so a consumer's tests can run the CLI
  # (`capcheck reproduce <token> --plugin <its subject>`).
  install(TARGETS capcheck EXPORT capcheckTargets RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

install(EXPORT capcheckTargets NAMESPACE capcheck:: DESTINATION ${CAPCHECK_INSTALL_CMAKEDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/capcheckConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/capcheckConfig.cmake
                              INSTALL_DESTINATION ${CAPCHECK_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/capcheckConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/capcheckConfig.cmake
              ${PROJECT_BINARY_DIR}/capcheckConfigVersion.cmake
        DESTINATION ${CAPCHECK_INSTALL_CMAKEDIR})
