//! The seam between the shared mapping ([`super::mapping`]) and the
//! backends. The mapping turns entities into [`Statement`]s and reads them
//! back from the [`Rows`] of [`Query`]s; a backend only runs those inside its
//! own transaction and converts its native values to and from [`Value`].
//!
//! SQL here is written once, in the portable subset both backends accept,
//! spelled as PostgreSQL spells it: `$1`-style placeholders, `BIGINT` and
//! `BOOLEAN` column types. The SQLite backend rewrites those
//! ([`to_sqlite`]); PostgreSQL runs the text as it is.
//!
//! Every integer crosses the seam as an `i64` and is converted with a check
//! on both sides: a value that does not fit is a storage error naming the
//! table, the column and the row, never a silent wrap.

use std::fmt;
use std::str::FromStr;

use super::StoreError;

/// One stored value: a statement parameter or a column of a row read back.
/// What both backends hold: SQLite has no booleans (it stores 0/1 and reads
/// them back as [`Value::Int`]); PostgreSQL has all four.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Int(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Text(v) => write!(f, "{v:?}"),
        }
    }
}

/// A table as the mapping reads and writes it. Declared once in
/// [`super::mapping`]; the SQL to read, insert, upsert and delete its rows is
/// generated from it, so a column is named in one place.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    /// Every column, in the order rows are read and written.
    pub columns: &'static [&'static str],
    /// The primary key: the `ON CONFLICT` target of an upsert, and what
    /// errors about a row show to name it.
    pub key: &'static [&'static str],
    /// Columns written when a row is created and kept as they are by later
    /// upserts (creation times, immutable references).
    pub insert_only: &'static [&'static str],
    /// How a full read is ordered (empty: any order).
    pub order_by: &'static [&'static str],
}

/// `"name"`: every generated identifier is quoted (`limit` is a keyword).
fn quoted(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("\"{n}\"")).collect()
}

impl Table {
    fn position(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|c| *c == column)
    }

    /// `SELECT <every column> FROM <table> [ORDER BY …]`.
    pub fn select_sql(&self) -> String {
        let mut sql = format!(
            "SELECT {} FROM \"{}\"",
            quoted(self.columns).join(", "),
            self.name
        );
        if !self.order_by.is_empty() {
            sql.push_str(&format!(" ORDER BY {}", quoted(self.order_by).join(", ")));
        }
        sql
    }

    /// `INSERT INTO <table> (<every column>) VALUES ($1, …)`.
    pub fn insert_sql(&self) -> String {
        let params: Vec<String> = (1..=self.columns.len()).map(|i| format!("${i}")).collect();
        format!(
            "INSERT INTO \"{}\" ({}) VALUES ({})",
            self.name,
            quoted(self.columns).join(", "),
            params.join(", ")
        )
    }

    /// The insert, updating every column that is neither key nor
    /// insert-only when a row with the same key exists.
    pub fn upsert_sql(&self) -> String {
        let set: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| !self.key.contains(c) && !self.insert_only.contains(c))
            .map(|(i, c)| format!("\"{c}\" = ${}", i + 1))
            .collect();
        let action = if set.is_empty() {
            "NOTHING".to_string()
        } else {
            format!("UPDATE SET {}", set.join(", "))
        };
        format!(
            "{} ON CONFLICT ({}) DO {action}",
            self.insert_sql(),
            quoted(self.key).join(", ")
        )
    }

    /// `DELETE FROM <table> WHERE <column> = $1`.
    pub fn delete_sql(&self, column: &str) -> String {
        format!("DELETE FROM \"{}\" WHERE \"{column}\" = $1", self.name)
    }
}

/// A statement that changes rows: portable SQL and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<Value>,
}

impl Statement {
    /// Hand-written portable SQL (for what the generated forms do not cover).
    pub fn new(sql: impl Into<String>, params: Vec<Value>) -> Self {
        Self {
            sql: sql.into(),
            params,
        }
    }

    /// Insert `record`, or update the existing row with its key.
    pub fn upsert(record: Record) -> Result<Self, StoreError> {
        let table = record.table;
        Ok(Self::new(table.upsert_sql(), record.finish()?))
    }

    /// Insert `record` (a row with its key must not exist).
    pub fn insert(record: Record) -> Result<Self, StoreError> {
        let table = record.table;
        Ok(Self::new(table.insert_sql(), record.finish()?))
    }

    /// Delete the rows of `table` whose text `column` is `value`.
    pub fn delete(table: &Table, column: &str, value: &str) -> Self {
        Self::new(table.delete_sql(column), vec![Value::Text(value.into())])
    }
}

/// A read: portable SQL, its parameters, and the columns each row holds (in
/// order), so a [`Row`] can be read by column name.
#[derive(Debug, Clone)]
pub struct Query {
    pub sql: String,
    pub params: Vec<Value>,
    pub table: &'static Table,
    pub columns: &'static [&'static str],
}

impl Query {
    /// Every row of `table`, every column, in the table's order.
    pub fn all(table: &'static Table) -> Self {
        Self {
            sql: table.select_sql(),
            params: Vec::new(),
            table,
            columns: table.columns,
        }
    }

    /// Hand-written portable SQL reading `columns` of `table`.
    pub fn new(
        table: &'static Table,
        columns: &'static [&'static str],
        sql: impl Into<String>,
        params: Vec<Value>,
    ) -> Self {
        Self {
            sql: sql.into(),
            params,
            table,
            columns,
        }
    }

    /// The rows a backend read for this query, each with one value per
    /// column of [`columns`](Self::columns).
    pub fn rows(&self, values: Vec<Vec<Value>>) -> Result<Rows, StoreError> {
        if let Some(bad) = values.iter().find(|r| r.len() != self.columns.len()) {
            return Err(StoreError::Backend(format!(
                "table {}: a row has {} columns where {} were read",
                self.table.name,
                bad.len(),
                self.columns.len()
            )));
        }
        Ok(Rows {
            table: self.table,
            columns: self.columns,
            values,
        })
    }
}

/// What a [`Query`] read.
#[derive(Debug)]
pub struct Rows {
    table: &'static Table,
    columns: &'static [&'static str],
    values: Vec<Vec<Value>>,
}

impl Rows {
    pub fn table(&self) -> &'static Table {
        self.table
    }

    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.values.iter().map(|values| Row {
            table: self.table,
            columns: self.columns,
            values,
        })
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// One row read back, its columns read by name with checked conversions.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    table: &'static Table,
    columns: &'static [&'static str],
    values: &'a [Value],
}

impl<'a> Row<'a> {
    /// A corrupt or unreadable column: names the table, the row (by its key,
    /// when the query read it) and the column.
    pub fn error(&self, column: &str, problem: impl fmt::Display) -> StoreError {
        let key: Vec<String> = self
            .table
            .key
            .iter()
            .filter_map(|k| {
                let i = self.columns.iter().position(|c| c == k)?;
                Some(format!("{k} {}", self.values[i]))
            })
            .collect();
        let row = if key.is_empty() {
            String::new()
        } else {
            format!(" ({})", key.join(", "))
        };
        StoreError::Backend(format!(
            "corrupt row in table {}{row}, column {column}: {problem}",
            self.table.name
        ))
    }

    fn get(&self, column: &str) -> Result<&'a Value, StoreError> {
        let i = self
            .columns
            .iter()
            .position(|c| *c == column)
            .ok_or_else(|| self.error(column, "not read by this query"))?;
        Ok(&self.values[i])
    }

    pub fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        match self.get(column)? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            other => Err(self.error(column, format!("{other} is not text"))),
        }
    }

    pub fn text(&self, column: &str) -> Result<String, StoreError> {
        self.opt_text(column)?
            .ok_or_else(|| self.error(column, "NULL where text is required"))
    }

    /// An integer that must fit `T` (`u64` revisions, `u32` limits, …).
    pub fn opt_int<T: TryFrom<i64>>(&self, column: &str) -> Result<Option<T>, StoreError> {
        match self.get(column)? {
            Value::Null => Ok(None),
            Value::Int(v) => T::try_from(*v).map(Some).map_err(|_| {
                self.error(
                    column,
                    format!("{v} is out of range for {}", std::any::type_name::<T>()),
                )
            }),
            other => Err(self.error(column, format!("{other} is not an integer"))),
        }
    }

    pub fn int<T: TryFrom<i64>>(&self, column: &str) -> Result<T, StoreError> {
        self.opt_int(column)?
            .ok_or_else(|| self.error(column, "NULL where an integer is required"))
    }

    /// A boolean; SQLite's 0 and 1 included, any other integer refused.
    pub fn bool(&self, column: &str) -> Result<bool, StoreError> {
        match self.get(column)? {
            Value::Bool(b) => Ok(*b),
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            other => Err(self.error(column, format!("{other} is not a boolean"))),
        }
    }

    /// Text holding a value of `T` (`Policy`, `Probe`, `RuleTarget`).
    pub fn parse<T: FromStr<Err = String>>(&self, column: &str) -> Result<T, StoreError> {
        self.text(column)?
            .parse()
            .map_err(|e| self.error(column, e))
    }

    /// Text holding JSON (tag lists).
    pub fn json<T: serde::de::DeserializeOwned>(&self, column: &str) -> Result<T, StoreError> {
        let s = self.text(column)?;
        serde_json::from_str(&s).map_err(|e| self.error(column, format!("{s:?}: {e}")))
    }
}

/// One row to write, built column by column. Conversions are checked; the
/// first problem (a value that does not fit, a column the table does not
/// have, a column left out) is reported by [`finish`](Self::finish).
#[derive(Debug)]
pub struct Record {
    table: &'static Table,
    values: Vec<Option<Value>>,
    problem: Option<String>,
}

impl Record {
    pub fn new(table: &'static Table) -> Self {
        Self {
            table,
            values: vec![None; table.columns.len()],
            problem: None,
        }
    }

    fn fail(&mut self, column: &str, problem: impl fmt::Display) {
        if self.problem.is_none() {
            self.problem = Some(format!(
                "cannot write table {}, column {column}: {problem}",
                self.table.name
            ));
        }
    }

    pub fn value(mut self, column: &str, value: Value) -> Self {
        match self.table.position(column) {
            Some(i) => self.values[i] = Some(value),
            None => self.fail(column, "no such column"),
        }
        self
    }

    pub fn text(self, column: &str, value: impl Into<String>) -> Self {
        self.value(column, Value::Text(value.into()))
    }

    pub fn opt_text<S: Into<String>>(self, column: &str, value: Option<S>) -> Self {
        match value {
            Some(v) => self.text(column, v),
            None => self.value(column, Value::Null),
        }
    }

    pub fn bool(self, column: &str, value: bool) -> Self {
        self.value(column, Value::Bool(value))
    }

    /// An integer, which must fit a stored `i64`.
    pub fn int<T>(mut self, column: &str, value: T) -> Self
    where
        T: TryInto<i64> + fmt::Display + Copy,
    {
        match value.try_into() {
            Ok(v) => self.value(column, Value::Int(v)),
            Err(_) => {
                self.fail(column, format!("{value} is too large to store"));
                self
            }
        }
    }

    pub fn opt_int<T>(self, column: &str, value: Option<T>) -> Self
    where
        T: TryInto<i64> + fmt::Display + Copy,
    {
        match value {
            Some(v) => self.int(column, v),
            None => self.value(column, Value::Null),
        }
    }

    /// `value` as JSON text (tag lists).
    pub fn json(mut self, column: &str, value: &impl serde::Serialize) -> Self {
        match serde_json::to_string(value) {
            Ok(s) => self.text(column, s),
            Err(e) => {
                self.fail(column, e);
                self
            }
        }
    }

    /// The values in column order, or the first problem.
    pub fn finish(self) -> Result<Vec<Value>, StoreError> {
        if let Some(p) = self.problem {
            return Err(StoreError::Backend(p));
        }
        let missing: Vec<&str> = self
            .table
            .columns
            .iter()
            .zip(&self.values)
            .filter(|(_, v)| v.is_none())
            .map(|(c, _)| *c)
            .collect();
        if !missing.is_empty() {
            return Err(StoreError::Backend(format!(
                "cannot write table {}: no value for column {}",
                self.table.name,
                missing.join(", ")
            )));
        }
        Ok(self.values.into_iter().flatten().collect())
    }
}

/// Portable SQL as SQLite wants it: `$N` placeholders become `?N` and the
/// column types `BIGINT` and `BOOLEAN` become `INTEGER` (so `BIGINT PRIMARY
/// KEY` is SQLite's rowid alias, as it always was). Quoted strings and
/// identifiers are left as they are.
pub fn to_sqlite(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for (_, d) in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '$' if chars.peek().is_some_and(|(_, d)| d.is_ascii_digit()) => out.push('?'),
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut end = start + c.len_utf8();
                while let Some(&(i, d)) = chars.peek() {
                    if !(d.is_ascii_alphanumeric() || d == '_') {
                        break;
                    }
                    end = i + d.len_utf8();
                    chars.next();
                }
                let word = &sql[start..end];
                if word.eq_ignore_ascii_case("BIGINT") || word.eq_ignore_ascii_case("BOOLEAN") {
                    out.push_str("INTEGER");
                } else {
                    out.push_str(word);
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    static T: Table = Table {
        name: "things",
        columns: &["id", "name", "created", "limit"],
        key: &["id"],
        insert_only: &["created"],
        order_by: &["name"],
    };

    #[test]
    fn generated_sql() {
        assert_eq!(
            T.select_sql(),
            r#"SELECT "id", "name", "created", "limit" FROM "things" ORDER BY "name""#
        );
        assert_eq!(
            T.upsert_sql(),
            r#"INSERT INTO "things" ("id", "name", "created", "limit") VALUES ($1, $2, $3, $4) ON CONFLICT ("id") DO UPDATE SET "name" = $2, "limit" = $4"#
        );
        assert_eq!(
            T.delete_sql("name"),
            r#"DELETE FROM "things" WHERE "name" = $1"#
        );
    }

    #[test]
    fn sqlite_spelling() {
        assert_eq!(
            to_sqlite(
                "CREATE TABLE t (a BIGINT PRIMARY KEY, b boolean, bigint_x TEXT DEFAULT 'BIGINT $1')"
            ),
            "CREATE TABLE t (a INTEGER PRIMARY KEY, b INTEGER, bigint_x TEXT DEFAULT 'BIGINT $1')"
        );
        assert_eq!(
            to_sqlite(r#"UPDATE "t" SET "b" = $12 WHERE "a" = $1 AND c = 'é$2'"#),
            r#"UPDATE "t" SET "b" = ?12 WHERE "a" = ?1 AND c = 'é$2'"#
        );
    }

    #[test]
    fn records_check_what_they_write() {
        let ok = Record::new(&T)
            .text("id", "a")
            .text("name", "n")
            .int("created", 5i64)
            .opt_int::<u32>("limit", None)
            .finish()
            .unwrap();
        assert_eq!(
            ok,
            vec![
                Value::Text("a".into()),
                Value::Text("n".into()),
                Value::Int(5),
                Value::Null
            ]
        );
        let e = Record::new(&T)
            .text("id", "a")
            .int("created", u64::MAX)
            .finish()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "storage: cannot write table things, column created: 18446744073709551615 is too large to store"
        );
        let e = Record::new(&T).text("id", "a").finish().unwrap_err();
        assert_eq!(
            e.to_string(),
            "storage: cannot write table things: no value for column name, created, limit"
        );
        let e = Record::new(&T).text("nope", "a").finish().unwrap_err();
        assert_eq!(
            e.to_string(),
            "storage: cannot write table things, column nope: no such column"
        );
    }

    #[test]
    fn rows_check_what_they_read() {
        let q = Query::all(&T);
        let rows = q
            .rows(vec![vec![
                Value::Text("a".into()),
                Value::Null,
                Value::Int(-1),
                Value::Int(2),
            ]])
            .unwrap();
        let r = rows.iter().next().unwrap();
        assert_eq!(r.int::<i64>("created").unwrap(), -1);
        assert_eq!(
            r.int::<u64>("created").unwrap_err().to_string(),
            "storage: corrupt row in table things (id \"a\"), column created: -1 is out of range for u64"
        );
        assert_eq!(
            r.text("name").unwrap_err().to_string(),
            "storage: corrupt row in table things (id \"a\"), column name: NULL where text is required"
        );
        assert_eq!(r.opt_text("name").unwrap(), None);
        assert_eq!(
            r.bool("limit").unwrap_err().to_string(),
            "storage: corrupt row in table things (id \"a\"), column limit: 2 is not a boolean"
        );
        assert!(q.rows(vec![vec![Value::Null]]).is_err());
    }
}
