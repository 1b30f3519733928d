"""The eval component: the eval worker and its executor processes (the sandbox is ``tradewind.sandbox``)."""
