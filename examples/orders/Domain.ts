/**
 * The orders domain: schemas for orders and their lines, and the migrations that create the tables.
 * Column names are snake_case in the database and camelCase in code (the client transforms both ways).
 */
import { Effect, Schema } from "effect"
import * as Migrator from "effect/sql/Migrator"
import * as SqlClient from "effect/sql/SqlClient"

export const OrderStatus = Schema.Literals(["pending", "paid", "shipped", "cancelled"])
export type OrderStatus = typeof OrderStatus.Type

export const Order = Schema.Struct({
  id: Schema.Number,
  customer: Schema.String,
  status: OrderStatus,
  totalCents: Schema.Number,
  createdAt: Schema.Date
})
export type Order = typeof Order.Type

export const OrderLine = Schema.Struct({
  orderId: Schema.Number,
  sku: Schema.String,
  quantity: Schema.Number,
  unitCents: Schema.Number
})
export type OrderLine = typeof OrderLine.Type

export const NewOrder = Schema.Struct({ customer: Schema.String, totalCents: Schema.Number })
export type NewOrder = typeof NewOrder.Type

export const NewLine = Schema.Struct({ sku: Schema.String, quantity: Schema.Number, unitCents: Schema.Number })
export type NewLine = typeof NewLine.Type

/** The channel a trigger notifies with an order's id whenever the order changes. */
export const ordersChangedChannel = "orders_changed"

const withSql = (f: (sql: SqlClient.SqlClient) => Effect.Effect<unknown, unknown>) =>
  Effect.asVoid(Effect.flatMap(Effect.service(SqlClient.SqlClient), f))

/** Migrations for a schema of its own (so examples and tests never collide with other tables). */
export const migrations = (schema: string) =>
  Migrator.fromRecord({
    "0001_orders": withSql((sql) =>
      sql.unsafe(`
        create table ${schema}.orders (
          id serial primary key,
          customer text not null,
          status text not null default 'pending' check (status in ('pending', 'paid', 'shipped', 'cancelled')),
          total_cents int not null check (total_cents >= 0),
          created_at timestamptz not null default now()
        )`)),
    "0002_order_lines": withSql((sql) =>
      sql.unsafe(`
        create table ${schema}.order_lines (
          order_id int not null references ${schema}.orders (id) on delete cascade,
          sku text not null,
          quantity int not null check (quantity > 0),
          unit_cents int not null,
          primary key (order_id, sku)
        )`)),
    "0003_notify_changes": withSql((sql) =>
      // Several statements: `.unprepared` without parameters runs them with the simple protocol.
      sql.unsafe(`
        create function ${schema}.notify_order_change() returns trigger language plpgsql as $$
        begin
          perform pg_notify('${ordersChangedChannel}', coalesce(new.id, old.id)::text);
          return null;
        end $$;
        create trigger orders_changed after insert or update or delete on ${schema}.orders
          for each row execute function ${schema}.notify_order_change();`).unprepared)
  })
