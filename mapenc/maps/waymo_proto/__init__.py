"""Protocol buffer modules for Waymo Open Motion ``Scenario`` records, generated from the
dataset's own ``.proto`` files (Apache-2.0; see ``README.md`` and ``LICENSE`` in this folder).

Importing them needs ``protobuf`` (``pip install mapenc[waymo]``).
"""
