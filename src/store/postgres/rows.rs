//! The shared mapping ([`crate::store::mapping`]) on PostgreSQL: [`Value`]
//! to and from the wire types, reads sent pipelined, writes prepared once
//! per statement text.

use std::collections::HashMap;
use std::error::Error;

use bytes::BytesMut;
use tokio_postgres::GenericClient;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use super::Failure;
use crate::store::sql::{Query, Rows, Statement, Value};

type BoxError = Box<dyn Error + Sync + Send>;

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        // Each variant checks the parameter's type itself: an integer bound
        // to a text column is an error, never bytes of the wrong shape.
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => v.to_sql_checked(ty, out),
            Value::Bool(v) => v.to_sql_checked(ty, out),
            Value::Text(v) => v.to_sql_checked(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(match *ty {
            Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            _ => Value::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::BOOL | Type::INT8 | Type::INT4 | Type::INT2)
            || <String as FromSql>::accepts(ty)
    }
}

/// The wire type a non-null value is sent as (`None` for NULL, whose type
/// only the server can infer).
fn wire_type(v: &Value) -> Option<Type> {
    match v {
        Value::Null => None,
        Value::Int(_) => Some(Type::INT8),
        Value::Bool(_) => Some(Type::BOOL),
        Value::Text(_) => Some(Type::TEXT),
    }
}

fn refs(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// Run one query. Without NULL parameters its types are known here, so it
/// goes out in one round trip (no separate prepare).
pub async fn fetch(c: &impl GenericClient, q: &Query) -> Result<Rows, Failure> {
    let typed: Option<Vec<(&(dyn ToSql + Sync), Type)>> = q
        .params
        .iter()
        .map(|p| Some((p as &(dyn ToSql + Sync), wire_type(p)?)))
        .collect();
    let rows = match typed {
        Some(typed) => c.query_typed(&q.sql, &typed).await?,
        None => c.query(&q.sql, &refs(&q.params)).await?,
    };
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let values = (0..q.columns.len())
            .map(|i| r.try_get::<_, Value>(i))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(values);
    }
    Ok(q.rows(out)?)
}

/// Run `queries` pipelined (one round trip's wait, not one per query).
pub async fn fetch_all(c: &impl GenericClient, queries: &[Query]) -> Result<Vec<Rows>, Failure> {
    futures_util::future::try_join_all(queries.iter().map(|q| fetch(c, q))).await
}

/// Run `statements` in order. Each distinct text is prepared once, all of
/// them pipelined, so a model with many endpoints costs one round trip per
/// row, as before.
pub async fn execute(c: &impl GenericClient, statements: &[Statement]) -> Result<(), Failure> {
    let mut texts: Vec<&str> = statements.iter().map(|s| s.sql.as_str()).collect();
    texts.sort_unstable();
    texts.dedup();
    let prepared = futures_util::future::try_join_all(texts.iter().map(|t| c.prepare(t))).await?;
    let prepared: HashMap<&str, _> = texts.into_iter().zip(prepared).collect();
    for s in statements {
        c.execute(&prepared[s.sql.as_str()], &refs(&s.params))
            .await?;
    }
    Ok(())
}
