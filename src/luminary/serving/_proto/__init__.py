"""Generated messages of the KServe v2 / Triton protocol (`make proto` regenerates them).

The messages live in a private descriptor pool, not protobuf's default one: the protocol's
package is `inference`, the same as in Triton's own client packages, and both must be
importable in one process (a test or the demo serves with Luminary and calls with
tritonclient).
"""

from google.protobuf.descriptor_pool import DescriptorPool

POOL = DescriptorPool()
