"""Training commands built on fastsnn's modules.

- ``python -m fastsnn.train.randman``: Zenke & Vogels (2021) on the Randman task (also under
  ``torchrun --nproc_per_node=N``, DistributedDataParallel);
- ``python -m fastsnn.train.sweep``: the surrogate-shape x scale sweep and the upper-bound
  regularizer sweep of the paper on Randman.

Nothing is imported here, so ``import fastsnn`` never pulls in matplotlib or tqdm.
"""
