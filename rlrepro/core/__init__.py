"""What every stage uses: params, errors, run names and paths, atomic writes, the package lock."""
