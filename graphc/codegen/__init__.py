"""Code generation: fusion, memory planning, C/CUDA rendering and building.

Pipeline (each a plain function of the previous stage's output)::

    Program --fuse--> [Kernel] --plan_memory--> Plan --render--> C source --build--> library
"""
