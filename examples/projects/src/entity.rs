//! The service's own tables, described once: sea-orm's `DeriveEntityModel`
//! and Roster's `StoreEntity` read the same struct.

pub mod project {
    //! `projects`: a name (unique, the upsert key) and a `lastchange`.

    use roster_entity::{StoreEntity, user};
    use sea_orm::entity::prelude::*;

    use super::users_projects;

    /// A project.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, StoreEntity)]
    #[sea_orm(table_name = "projects")]
    #[store(upsert_key(name))]
    pub struct Model {
        /// Primary key (on PostgreSQL from Roster's shared sequence).
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The project's name, unique.
        pub name: String,
        /// Time of the last change; the optimistic-concurrency token.
        pub lastchange: DateTimeUtc,
    }

    /// Relations of `projects`.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        /// The project's membership rows.
        #[sea_orm(has_many = "users_projects::Entity")]
        UsersProjects,
    }

    /// A project's members, through `users_projects`.
    impl Related<user::Entity> for Entity {
        fn to() -> RelationDef {
            users_projects::Relation::User.def()
        }
        fn via() -> Option<RelationDef> {
            Some(users_projects::Relation::Project.def().rev())
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod users_projects {
    //! `users_projects`: who works on which project, `(user_id, project_id)`
    //! unique.

    use roster_entity::{StoreEntity, user};
    use sea_orm::entity::prelude::*;

    use super::project;

    /// A membership of a user in a project.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, StoreEntity)]
    #[sea_orm(table_name = "users_projects")]
    #[store(upsert_key(user_id, project_id))]
    pub struct Model {
        /// Primary key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The member (`users.id`).
        pub user_id: i64,
        /// The project (`projects.id`).
        pub project_id: i64,
    }

    /// Relations of `users_projects`.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        /// The member.
        #[sea_orm(
            belongs_to = "user::Entity",
            from = "Column::UserId",
            to = "user::Column::Id",
            on_delete = "Cascade"
        )]
        User,
        /// The project.
        #[sea_orm(
            belongs_to = "project::Entity",
            from = "Column::ProjectId",
            to = "project::Column::Id",
            on_delete = "Cascade"
        )]
        Project,
    }

    impl Related<user::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::User.def()
        }
    }

    impl Related<project::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Project.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// A user's projects, through `users_projects`: the relation the `User.projects`
/// field loads, declared where sea-orm declares relations.
impl sea_orm::Related<project::Entity> for roster_entity::user::Entity {
    fn to() -> sea_orm::RelationDef {
        sea_orm::RelationTrait::def(&users_projects::Relation::Project)
    }
    fn via() -> Option<sea_orm::RelationDef> {
        Some(sea_orm::RelationTrait::def(&users_projects::Relation::User).rev())
    }
}
