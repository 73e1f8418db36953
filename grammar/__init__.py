"""The nnspec grammar (nnspec.lark), shipped inside the installed package as `nnspec.grammar`."""
