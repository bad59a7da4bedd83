//! Tables shared by both backends. Written by hand: the migrations of each backend create the
//! same columns with the same widths (ids `BIGINT`, money `BIGINT` cents, versions `INTEGER`).
//! Backend-only columns (PostgreSQL's `books.search_vector`, SQLite's `books_fts`) are left out.

diesel::table! {
    customers (id) {
        id -> BigInt,
        name -> Text,
        email -> Nullable<Text>,
        phone -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        email -> Text,
        password_hash -> Text,
        role -> Text,
        active -> Bool,
        customer_id -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> BigInt,
        user_id -> BigInt,
        family -> Text,
        token_hash -> Text,
        expires_at -> Timestamp,
        rotated_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    books (id) {
        id -> BigInt,
        isbn -> Text,
        title -> Text,
        subtitle -> Nullable<Text>,
        description -> Nullable<Text>,
        language -> Text,
        publisher -> Nullable<Text>,
        publication_date -> Nullable<Date>,
        page_count -> Nullable<Integer>,
        format -> Text,
        list_price_cents -> BigInt,
        cover_url -> Nullable<Text>,
        status -> Text,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    authors (id) {
        id -> BigInt,
        name -> Text,
        bio -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    categories (id) {
        id -> BigInt,
        name -> Text,
        description -> Nullable<Text>,
        parent_id -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    book_authors (book_id, position) {
        book_id -> BigInt,
        author_id -> BigInt,
        position -> Integer,
        role -> Text,
    }
}

diesel::table! {
    book_categories (book_id, category_id) {
        book_id -> BigInt,
        category_id -> BigInt,
    }
}

diesel::table! {
    stock_levels (book_id) {
        book_id -> BigInt,
        on_hand -> BigInt,
        reserved -> BigInt,
        reorder_point -> BigInt,
        reorder_quantity -> BigInt,
        version -> Integer,
        updated_at -> Timestamp,
        avg_unit_cost_cents -> Nullable<BigInt>,
        alert_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    stock_movements (id) {
        id -> BigInt,
        book_id -> BigInt,
        quantity -> BigInt,
        kind -> Text,
        reference -> Nullable<Text>,
        reason -> Nullable<Text>,
        note -> Nullable<Text>,
        unit_cost_cents -> Nullable<BigInt>,
        user_id -> Nullable<BigInt>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    stock_receipts (id) {
        id -> BigInt,
        supplier -> Nullable<Text>,
        note -> Nullable<Text>,
        user_id -> Nullable<BigInt>,
        created_at -> Timestamp,
        purchase_order_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    orders (id) {
        id -> BigInt,
        customer_id -> Nullable<BigInt>,
        status -> Text,
        currency -> Text,
        subtotal_cents -> BigInt,
        total_cents -> BigInt,
        shipping_address -> Nullable<Text>,
        notes -> Nullable<Text>,
        expires_at -> Timestamp,
        created_by -> BigInt,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    order_lines (id) {
        id -> BigInt,
        order_id -> BigInt,
        book_id -> BigInt,
        title -> Text,
        isbn -> Text,
        unit_price_cents -> BigInt,
        quantity -> BigInt,
        line_total_cents -> BigInt,
        position -> Integer,
        returned_quantity -> BigInt,
    }
}

diesel::table! {
    order_events (id) {
        id -> BigInt,
        order_id -> BigInt,
        from_status -> Nullable<Text>,
        to_status -> Text,
        actor_user_id -> Nullable<BigInt>,
        note -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    idempotency_keys (id) {
        id -> BigInt,
        scope -> Text,
        key -> Text,
        request_hash -> Text,
        status_code -> Nullable<Integer>,
        response_body -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    payments (id) {
        id -> BigInt,
        order_id -> BigInt,
        method -> Text,
        amount_cents -> BigInt,
        status -> Text,
        provider_reference -> Nullable<Text>,
        failure_code -> Nullable<Text>,
        created_by -> BigInt,
        created_at -> Timestamp,
        provider_key -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        lease_token -> Nullable<Text>,
        idempotency_key_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    returns (id) {
        id -> BigInt,
        order_id -> BigInt,
        status -> Text,
        restock -> Bool,
        reason -> Text,
        refund_cents -> BigInt,
        requested_by -> BigInt,
        decided_by -> Nullable<BigInt>,
        decision_note -> Nullable<Text>,
        created_at -> Timestamp,
        decided_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    return_lines (id) {
        id -> BigInt,
        return_id -> BigInt,
        order_line_id -> BigInt,
        book_id -> BigInt,
        quantity -> BigInt,
        refund_cents -> BigInt,
    }
}

diesel::table! {
    refunds (id) {
        id -> BigInt,
        order_id -> BigInt,
        payment_id -> Nullable<BigInt>,
        return_id -> Nullable<BigInt>,
        method -> Text,
        charge_reference -> Nullable<Text>,
        amount_cents -> BigInt,
        status -> Text,
        provider_reference -> Nullable<Text>,
        failure_code -> Nullable<Text>,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        reason -> Text,
        created_by -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    suppliers (id) {
        id -> BigInt,
        name -> Text,
        email -> Nullable<Text>,
        phone -> Nullable<Text>,
        address -> Nullable<Text>,
        lead_time_days -> Integer,
        notes -> Nullable<Text>,
        archived_at -> Nullable<Timestamp>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    purchase_orders (id) {
        id -> BigInt,
        supplier_id -> BigInt,
        status -> Text,
        currency -> Text,
        expected_on -> Nullable<Date>,
        note -> Nullable<Text>,
        total_cents -> BigInt,
        version -> Integer,
        created_by -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        submitted_at -> Nullable<Timestamp>,
        received_at -> Nullable<Timestamp>,
        cancelled_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    purchase_order_lines (id) {
        id -> BigInt,
        purchase_order_id -> BigInt,
        book_id -> BigInt,
        quantity -> BigInt,
        received_quantity -> BigInt,
        unit_cost_cents -> BigInt,
    }
}

diesel::table! {
    stocktakes (id) {
        id -> BigInt,
        status -> Text,
        scope -> Text,
        category_id -> Nullable<BigInt>,
        note -> Nullable<Text>,
        zero_uncounted -> Nullable<Bool>,
        version -> Integer,
        created_by -> Nullable<BigInt>,
        completed_by -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        completed_at -> Nullable<Timestamp>,
        cancelled_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    stocktake_lines (stocktake_id, book_id) {
        stocktake_id -> BigInt,
        book_id -> BigInt,
        snapshot_on_hand -> BigInt,
        counted -> Nullable<BigInt>,
        expected_at_count -> Nullable<BigInt>,
        counted_at -> Nullable<Timestamp>,
        counted_by -> Nullable<BigInt>,
        posted_quantity -> Nullable<BigInt>,
        is_open -> Bool,
    }
}

diesel::table! {
    stock_alerts (id) {
        id -> BigInt,
        book_id -> BigInt,
        status -> Text,
        on_hand -> BigInt,
        reserved -> BigInt,
        available -> BigInt,
        reorder_point -> BigInt,
        opened_at -> Timestamp,
        acknowledged_at -> Nullable<Timestamp>,
        acknowledged_by -> Nullable<BigInt>,
        resolved_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> BigInt,
        url -> Text,
        description -> Nullable<Text>,
        event_types -> Text,
        secret -> Text,
        active -> Bool,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_events (id) {
        id -> Text,
        event_type -> Text,
        payload -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> BigInt,
        event_id -> Text,
        endpoint_id -> BigInt,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_status_code -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        completed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> BigInt,
        delivery_id -> BigInt,
        attempted_at -> Timestamp,
        status_code -> Nullable<Integer>,
        latency_ms -> BigInt,
        error -> Nullable<Text>,
    }
}

diesel::joinable!(users -> customers (customer_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(book_authors -> books (book_id));
diesel::joinable!(book_authors -> authors (author_id));
diesel::joinable!(book_categories -> books (book_id));
diesel::joinable!(book_categories -> categories (category_id));
diesel::joinable!(stock_levels -> books (book_id));
diesel::joinable!(stock_movements -> books (book_id));
diesel::joinable!(stock_movements -> users (user_id));
diesel::joinable!(stock_receipts -> users (user_id));
diesel::joinable!(orders -> customers (customer_id));
diesel::joinable!(order_lines -> orders (order_id));
diesel::joinable!(order_lines -> books (book_id));
diesel::joinable!(order_events -> orders (order_id));
diesel::joinable!(payments -> orders (order_id));
diesel::joinable!(returns -> orders (order_id));
diesel::joinable!(return_lines -> returns (return_id));
diesel::joinable!(return_lines -> order_lines (order_line_id));
diesel::joinable!(refunds -> orders (order_id));

diesel::joinable!(purchase_orders -> suppliers (supplier_id));
diesel::joinable!(purchase_order_lines -> purchase_orders (purchase_order_id));
diesel::joinable!(purchase_order_lines -> books (book_id));
diesel::joinable!(stock_receipts -> purchase_orders (purchase_order_id));
diesel::joinable!(stocktake_lines -> stocktakes (stocktake_id));
diesel::joinable!(stocktake_lines -> books (book_id));
diesel::joinable!(stock_alerts -> books (book_id));
diesel::joinable!(webhook_deliveries -> webhook_events (event_id));
diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));
diesel::joinable!(webhook_attempts -> webhook_deliveries (delivery_id));

diesel::allow_tables_to_appear_in_same_query!(
    customers,
    users,
    refresh_tokens,
    books,
    authors,
    categories,
    book_authors,
    book_categories,
    stock_levels,
    stock_movements,
    stock_receipts,
    orders,
    order_lines,
    order_events,
    idempotency_keys,
    payments,
    returns,
    return_lines,
    refunds,
    suppliers,
    purchase_orders,
    purchase_order_lines,
    stocktakes,
    stocktake_lines,
    stock_alerts,
    webhook_endpoints,
    webhook_events,
    webhook_deliveries,
    webhook_attempts,
);
