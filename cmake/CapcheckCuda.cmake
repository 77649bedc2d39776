# The CUDA wiring, included from the top-level CMakeLists.txt when
# CAPCHECK_ENABLE_CUDA is on (after src/, properties/, tests/ and bench/ are
# set up): the cuda backend library, its registration in the backend registry,
# its GoogleTest (ctest label `gpu`, skipped where no device is present) and
# the GPU benchmark.
if(NOT CMAKE_CUDA_COMPILER)
  message(FATAL_ERROR "CapcheckCuda.cmake needs the CUDA language enabled (CAPCHECK_ENABLE_CUDA=ON)")
endif()

find_package(CUDAToolkit REQUIRED)  # CUDA::cudart_static, visible to every target below
add_subdirectory(${PROJECT_SOURCE_DIR}/src/backend/cuda ${PROJECT_BINARY_DIR}/src/backend/cuda)

# The registry (src/backend/registry.cc) constructs "cuda" under CAPCHECK_HAVE_CUDA.
target_link_libraries(capcheck_backend PRIVATE capcheck::cuda)
target_compile_definitions(capcheck_backend PRIVATE CAPCHECK_HAVE_CUDA=1)

if(CAPCHECK_BUILD_TESTS)
  capcheck_add_test(NAME cuda_backend_test
                    SOURCES ${PROJECT_SOURCE_DIR}/tests/cuda_backend_test.cc
                    LIBS capcheck::cuda capcheck::runner
                    LABELS gpu)
endif()

if(CAPCHECK_BUILD_BENCH)
  # The bare CUDA loop has its own kernels, so the program is compiled by nvcc.
  set_source_files_properties(${PROJECT_SOURCE_DIR}/bench/gpu_bench.cc PROPERTIES LANGUAGE CUDA)
  add_executable(gpu_bench ${PROJECT_SOURCE_DIR}/bench/gpu_bench.cc)
  set_target_properties(gpu_bench PROPERTIES
    CUDA_ARCHITECTURES "${CAPCHECK_CUDA_ARCHITECTURES}"
    CUDA_STANDARD 17
    CUDA_STANDARD_REQUIRED ON
    CUDA_RUNTIME_LIBRARY Static)
  target_include_directories(gpu_bench PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(gpu_bench PRIVATE capcheck::cuda capcheck::runner
                        benchmark::benchmark CUDA::cudart_static)
endif()
