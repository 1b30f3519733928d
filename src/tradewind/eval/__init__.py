"""The eval component: the Lua sandbox, the `ta` library, and the eval worker."""
