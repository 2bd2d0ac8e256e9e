//! Azure ARM route-table provider (see issue: Azure provider).
