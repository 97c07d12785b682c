"""Only what pyproject.toml cannot say: ship the repository's top-level `taxonomies/` folder inside the
package (as `pipeline/shipped_taxonomies/`), so a wheel or `pip install .` finds it from any directory.

The folder stays the one source of truth in the repository; a package-dir mapping copies it at build time.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["pipeline", "pipeline.*", "trainer", "trainer.*"])
    + ["pipeline.shipped_taxonomies"],
    package_dir={"pipeline.shipped_taxonomies": "taxonomies"},
    package_data={"pipeline.shipped_taxonomies": ["*.yaml", "corpora/*.yaml"], "trainer": ["configs/*.yaml"], "trainer.model": ["*.txt"]},
)
