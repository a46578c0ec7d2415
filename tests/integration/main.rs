
mod kb_netns; // KB net.* scopes checked in throwaway network namespaces (root)
