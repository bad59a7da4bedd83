//! The list envelope and page parameters every collection endpoint shares.

use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub const MAX_PER_PAGE: i64 = 100;

/// `?page=&per_page=`: 1-based page, at most 100 items.
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1-based page number.
    #[param(minimum = 1, default = 1)]
    pub page: Option<i64>,
    /// Items per page.
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub per_page: Option<i64>,
}

impl PageParams {
    /// Checks the bounds, naming the parameter that is off.
    pub fn resolve(&self) -> Result<(i64, i64), ApiError> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(20);
        if page < 1 {
            return Err(ApiError::invalid("page", "must be at least 1"));
        }
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(ApiError::invalid("per_page", "must be between 1 and 100"));
        }
        Ok((page, per_page))
    }
}

/// One page of a collection.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: i64,
    pub per_page: i64,
    /// Items matching the filters, over all pages.
    pub total: i64,
}

impl<T> Page<T> {
    pub fn offset(page: i64, per_page: i64) -> i64 {
        (page - 1).saturating_mul(per_page)
    }
}
